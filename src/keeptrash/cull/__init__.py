"""Triage a photo folder with a trained model: scan, score, sort into keep/ and trash/, review on a contact sheet."""
