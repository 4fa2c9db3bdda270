"""Pure readers of layer archives: decompression, tar, and the layer squash."""
