"""A complete agreement to start from: valid as it stands, with what a person must check marked.

Records managers start from this rather than from a blank page. Every ``# REVIEW:`` comment marks a
value civicshare cannot know (the purpose, the lawful basis, how long the recipient may keep the data,
the DPIA, the people): the defaults are placeholders chosen to be cautious, not advice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta

from civicshare.agreements.model import LAWFUL_BASES
from civicshare.config import check_org_id
from civicshare.errors import UsageError

DEFAULT_MEDIA_TYPES = ("application/pdf",)


def _q(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, whatever characters it holds.
    return json.dumps(value, ensure_ascii=False)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def render_template(provider: str, recipient: str, *, dataset: str | None = None,
                    fields: Sequence[str] | None = None, documents: bool = False,
                    schema: Sequence[str] | None = None, today: date,
                    names: Mapping[str, str] | None = None) -> str:
    """A YAML agreement between ``provider`` and ``recipient`` that validates as it stands.

    For a dataset, ``schema`` is the list of fields the provider holds (from its holding) and
    ``fields`` those to share, which must be among them; with no schema, the fields named are the
    schema. ``names`` gives the organisations' full names where known.
    """
    check_org_id(provider)
    check_org_id(recipient)
    if provider == recipient:
        raise UsageError("The provider and the recipient must be different organisations.")
    if (dataset is None) == (not documents):
        raise UsageError("Say what the agreement covers: --dataset NAME (with --fields a,b,...) or --documents.")
    names = names or {}
    items = _dataset_items(dataset, fields, schema) if dataset is not None else _document_items()
    end = _add_years(today, 1) - timedelta(days=1)
    review = _add_years(today, 1) - timedelta(days=91)  # about nine months in: time to act on the review
    lines = [
        "# A data sharing agreement (UK GDPR; ICO Data Sharing Code), version 1 of the civicshare format.",
        "# Check every line marked REVIEW with the people responsible, then:",
        "#   civicshare agreement create --file THIS-FILE",
        "version: 1",
        f"# id: DSA-{today.year}-0001  # left out: the register gives the next number. Write one to use your own.",
        "parties:",
        f"  - org: {provider}",
        f"    name: {_q(names.get(provider, provider))}  # REVIEW: the organisation's full legal name",
        "    role: controller  # controller, joint_controller or processor",
        f"  - org: {recipient}",
        f"    name: {_q(names.get(recipient, recipient))}  # REVIEW: the organisation's full legal name",
        "    role: controller  # REVIEW: a processor acts only on the provider's instructions",
        f"provider: {provider}",
        f"recipients: [{recipient}]",
        "# REVIEW: say in plain words what the data is shared for, and why less would not do.",
        f"purpose: {_q(f'To be written: why {provider} shares this data with {recipient}.')}",
        "# REVIEW: UK GDPR Article 6(1): " + "; ".join(f"{k} {v}" for k, v in LAWFUL_BASES.items()) + ".",
        "lawful_basis: e",
        "# REVIEW: the law that gives the power to share (for public task), or remove this line.",
        f"legal_power: {_q('To be confirmed')}",
        "# REVIEW: true if health, ethnicity, religion or other special category data is shared; then add",
        "# article_9_condition: a letter from a to j (UK GDPR Article 9(2)).",
        "special_category_data: false",
        *items,
        "classification: OFFICIAL  # REVIEW: OFFICIAL or OFFICIAL-SENSITIVE",
        "onward_sharing: false  # whether recipients may pass the data on",
        "# REVIEW: how long recipients keep the data: days_after_receipt: N, or until_agreement_end: true.",
        "retention:",
        "  days_after_receipt: 365",
        f"start_date: {today.isoformat()}",
        f"end_date: {end.isoformat()}",
        f"review_date: {review.isoformat()}  # REVIEW: when the agreement is next reviewed",
        f"dpia_reference: {_q('DPIA to be confirmed')}  # REVIEW: the data protection impact assessment",
        "# REVIEW: a contact at each party, who answers questions about this sharing.",
        "contacts:",
        *_people(provider, recipient, "email", lambda org: f"dpo@{org}.invalid"),
        "# REVIEW: who signs for each party (a senior person, such as the SIRO or DPO).",
        "signatories:",
        *_people(provider, recipient, "role", lambda _org: "Senior Information Risk Owner"),
        *(_quality_lines() if dataset is not None else []),
    ]
    return "\n".join(lines) + "\n"


def _people(provider: str, recipient: str, key: str, value: Callable[[str], str]) -> list[str]:
    result: list[str] = []
    for org in (provider, recipient):
        result += [f"  - org: {org}", f"    name: {_q('To be named')}", f"    {key}: {_q(value(org))}"]
    return result


def _dataset_items(dataset: str, fields: Sequence[str] | None, schema: Sequence[str] | None) -> list[str]:
    if schema is None:
        if not fields:
            raise UsageError(f"Name the fields of dataset {dataset} to share with --fields a,b,...")
        schema = list(fields)
    elif fields:
        unknown = [f for f in fields if f not in schema]
        if unknown:
            raise UsageError(f"Dataset {dataset} has no field {', '.join(unknown)}; its fields are "
                             f"{', '.join(schema)}.")
    chosen = list(fields) if fields else list(schema)
    if len(set(chosen)) != len(chosen):
        raise UsageError("--fields names a field twice.")
    return [
        "data_items:",
        f"  dataset: {_q(dataset)}",
        f"  schema: {_list(schema)}  # the fields the provider holds",
        "  # REVIEW: only the fields the purpose needs; nothing else is ever sent.",
        f"  fields: {_list(chosen)}",
    ]


def _quality_lines() -> list[str]:
    return [
        "# Optional: the lowest quality score (0 to 100, see civicshare quality) a share of the dataset may",
        "# have; a share below it is refused, by the provider and again by the recipient. Remove the # to set it.",
        "# minimum_quality: 80",
    ]


def _document_items() -> list[str]:
    return [
        "data_items:",
        "  # REVIEW: the kinds of file that may be shared, as media types.",
        f"  media_types: {_list(DEFAULT_MEDIA_TYPES)}",
        "  # REVIEW: the kinds of document in words, such as assessment letters.",
        "  document_types: []",
    ]
