"""One module per paper table (`python -m reproduce table2`); see docs/reproduce.md."""
