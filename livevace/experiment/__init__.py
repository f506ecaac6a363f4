"""The stratification experiment: render one video per VACE strategy, score and compare them."""
