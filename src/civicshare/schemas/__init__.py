"""Canonical schemas, UK identifier validators, mappings and quality reports."""

from civicshare.schemas.catalog import SchemaCatalog
from civicshare.schemas.model import Schema, SchemaField
from civicshare.schemas.validators import check, normalise
from civicshare.schemas.validators_sql import sql_normalise, sql_valid

__all__ = ["Schema", "SchemaCatalog", "SchemaField", "check", "normalise", "sql_normalise", "sql_valid"]
