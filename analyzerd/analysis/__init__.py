"""Sans-IO analysis of layer blobs."""
