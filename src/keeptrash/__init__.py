"""keeptrash: a DVC experiment repo that trains a photo keep/trash classifier."""
