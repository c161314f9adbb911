"""Vendor faces: each speaks one vendor's API dialect over the same RecordService."""
