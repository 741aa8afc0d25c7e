"""``python -m tr2m_edge`` runs the CLI."""

from tr2m_edge.cli import main

main()
