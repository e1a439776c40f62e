"""Per-image features: a pretrained CNN embedding plus photographic image statistics."""

# Bump when decoding, resizing or the statistics change: cached features of older versions are then ignored.
PREPROCESSING_VERSION = 5
# The end of the name of an embedding column that pools a backbone's final feature map (the others pool its blocks).
FINAL_MAP_SUFFIX = "_final"
