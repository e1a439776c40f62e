"""Triage a photo folder with a trained model: scan, score, sort into keep/ and trash/, review on a contact sheet."""

# The decisions, which are also the names of the folders photos are sorted into.
KEEP, TRASH = "keep", "trash"


class SortRefused(Exception):
    """This photo is not sorted, for the reason given; the run goes on with the others."""

