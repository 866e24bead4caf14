"""Exchange between organisations: signed documents, cards, pinned partners (later directories, receipts)."""
