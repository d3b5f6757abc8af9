"""The command line, ``python -m ebmcore``: argparse front end, one module per subcommand."""
