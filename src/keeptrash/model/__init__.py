"""The train stage: the classifier, its inputs and its cross-validation."""
