VERSION = "old"
