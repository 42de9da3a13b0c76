"""The command-line apps (plumbum): they parse, call the core, print, and return a status."""
