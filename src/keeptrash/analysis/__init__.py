"""What a reviewer needs beyond accuracy: curves, calibration, categories, degradations, baselines, preferences."""
