"""WESAD, the wearable stress and affect dataset, as a TFDS dataset of physiological windows."""
