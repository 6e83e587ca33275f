"""Library code behind the notebooks: each module computes one notebook's records."""
