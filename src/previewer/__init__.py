"""previewer: an HTTP image preview service with a persistent LRU disk cache."""

__version__ = "0.1.0"
