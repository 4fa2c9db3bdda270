"""analyzerd: a streaming container-image analyzer."""

__version__ = "0.1.0"
#: Bump when the same layer bytes would give different results (it keys stored layer results).
ANALYZER_VERSION = "5"
