"""Per-image features: a pretrained CNN embedding plus photographic image statistics."""
