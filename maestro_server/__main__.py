"""`python -m maestro_server` runs the `maestro` command line."""

from maestro_server.cli.main import main

if __name__ == "__main__":
    main()
