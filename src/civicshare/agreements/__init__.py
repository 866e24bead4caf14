"""Data sharing agreements: the model, reading and checking, the template, and the register."""

from civicshare.agreements.model import Agreement, Contact, DatasetItems, DocumentItems, Party, Signatory
from civicshare.agreements.parse import parse_agreement, to_yaml
from civicshare.agreements.template import render_template

__all__ = ["Agreement", "Contact", "DatasetItems", "DocumentItems", "Party", "Signatory", "parse_agreement",
           "render_template", "to_yaml"]
