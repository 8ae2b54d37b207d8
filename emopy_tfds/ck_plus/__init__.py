"""CK+ (the Extended Cohn-Kanade dataset) as a TFDS dataset: emotion frames, sequences and FACS."""
