"""The labels stage: keep/trash labels for own photos and AVA photos, and their splits."""

# The labels table's classes. Here, not in labelling, so that the stages that only need the classes (train, benchmark,
# analyze) do not import what builds the labels (own photos' hashing, their XMP).
KEEP, TRASH = 1, 0
