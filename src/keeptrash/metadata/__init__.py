"""The metadata stage: AVA votes, tags, challenges and the official split, parsed into one table."""
