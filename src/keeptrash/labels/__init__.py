"""The labels stage: keep/trash labels for own photos and AVA photos, and their splits."""
