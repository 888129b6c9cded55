"""The `danbao` command line."""
