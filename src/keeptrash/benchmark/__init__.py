"""The benchmark stage: the test-split scores and their intervals."""
