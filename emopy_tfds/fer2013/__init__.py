"""fer2013 and FER+ as a TFDS dataset."""
