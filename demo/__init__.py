"""The closed-loop demo (``make demo``)."""
