"""Per-image features: a pretrained CNN embedding plus photographic image statistics."""

# Bump when decoding, resizing or the statistics change: cached features of older versions are then ignored.
PREPROCESSING_VERSION = 5
