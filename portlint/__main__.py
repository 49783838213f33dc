"""Entry point for ``python -m portlint``."""

from portlint.cli import main

if __name__ == "__main__":
    main()
