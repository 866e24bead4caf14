"""Holdings: datasets and documents, encrypted at rest."""
