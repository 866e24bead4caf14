"""Importing a holding from the browser: a dataset (with a schema and a mapping file, or a suggested
mapping to review first) or a document. Uploads are read by civicshare.web.uploads, never spooled
to disk: a dataset into memory, a document straight into the core's encryption.

A suggested mapping is shown for review with the file to be chosen again: civicshare keeps no copy of
an upload between pages, since it would have to be plaintext somewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from civicshare.access import Actor, Permission
from civicshare.agreements.model import CLASSIFICATIONS, OFFICIAL
from civicshare.errors import InvalidInput, UsageError
from civicshare.holdings.store import Holding
from civicshare.node import Node
from civicshare.schemas.importing import FLAG, POLICIES
from civicshare.web.deps import NodeDep, SessionDep
from civicshare.web.forms import FormErrors
from civicshare.web.streaming import streamed_form
from civicshare.web.templating import WEB, render
from civicshare.web.uploads import UploadedFile, limits, memory_form, size_words

router = APIRouter()

MAPPING_LIMIT = 256 * 1024  # a mapping is a short YAML file
MAPPING_LABEL = "the mapping"
PROBLEMS_SHOWN = 10
KINDS = (("dataset", "A dataset", "Rows and columns: a CSV, Excel (XLSX) or JSON Lines file."),
         ("document", "A document", "Any other file, such as a letter, a PDF or a scan."))
CLASSIFICATION_CHOICES = ((OFFICIAL, "OFFICIAL", "Most council information, including personal data."),
                          ("OFFICIAL-SENSITIVE", "OFFICIAL-SENSITIVE",
                           "OFFICIAL information whose loss would cause serious harm; handled with extra care."))
POLICY_CHOICES = (("flag", "Import every row and flag the invalid ones in the quality report", None),
                  ("quarantine", "Import the valid rows, and put the invalid ones in a separate holding", None),
                  ("reject", "Refuse the whole file if any row is invalid", None))
MAPPING_CHOICES = (("columns", "The file's columns already have the schema's field names", None),
                   ("file", "Upload a mapping file (YAML)", "Say which column goes into which field."),
                   ("suggest", "Suggest a mapping for me to review", "civicshare reads the column names and the "
                    "first rows, and guesses; you check every guess before anything is imported."))
ENCODINGS = (("auto", "Work it out from the file"), ("utf-8", "UTF-8"), ("windows-1252", "Windows-1252 (Excel on "
             "Windows)"), ("latin-1", "Latin-1"))


DATASET_DEFAULTS = {"classification": OFFICIAL, "policy": FLAG, "mapping": "columns", "encoding": "auto"}


def _require_import(actor: Actor) -> None:
    actor.require(Permission.HOLDINGS_IMPORT, "import holdings")


def _redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


def _add_refusal(errors: FormErrors, exc: InvalidInput | UsageError, field: str) -> None:
    """A core refusal of the upload, by ``field``, with its first problems in the summary."""
    errors.add(field, exc.message)
    for problem in exc.problems[:PROBLEMS_SHOWN]:
        if problem.message != exc.message:
            errors.add(None, str(problem))
    if len(exc.problems) > PROBLEMS_SHOWN:
        errors.add(None, f"And {len(exc.problems) - PROBLEMS_SHOWN:,} more problems.")


@router.get("/holdings/import")
async def import_start(request: Request, session: SessionDep, kind: str | None = None) -> Response:
    """What are you importing? A GET form: choosing only moves on to the right page."""
    _require_import(session.actor)
    errors = FormErrors()
    if kind is not None:
        chosen = errors.choice({"kind": kind}, "kind", ("dataset", "document"),
                               missing="Select whether you are importing a dataset or a document")
        if chosen:
            return _redirect(f"{WEB}/holdings/import/{chosen}")
    return render(request, "holdings/import_start.html", status=400 if errors else 200, active_nav="holdings",
                  kinds=KINDS, errors=errors)


# Datasets ------------------------------------------------------------------------------------


def _schemas(node: Node) -> list[tuple[str, str]]:
    return [("", "No schema: keep the columns as they are")] + [
        (s.name, f"{s.title} ({s.name}, version {s.version})") for s in node.schemas.list()]


def _dataset_page(request: Request, node: Node, *, values: Mapping[str, str] | None = None,
                  errors: FormErrors | None = None, status: int = 200) -> Response:
    return render(request, "holdings/import_dataset.html", status=status, active_nav="holdings",
                  values=dict(values or {}), errors=errors or FormErrors(), schemas=_schemas(node),
                  classifications=CLASSIFICATION_CHOICES, policies=POLICY_CHOICES, mappings=MAPPING_CHOICES,
                  encodings=ENCODINGS, max_size=size_words(limits(request)[0]))


def _review_page(request: Request, values: Mapping[str, str], mapping: str, *,
                 errors: FormErrors | None = None, status: int = 200) -> Response:
    return render(request, "holdings/import_review.html", status=status, active_nav="holdings",
                  values=dict(values), mapping=mapping, errors=errors or FormErrors(),
                  max_size=size_words(limits(request)[0]))


@router.get("/holdings/import/dataset")
async def dataset_form(request: Request, session: SessionDep, node: NodeDep) -> Response:
    _require_import(session.actor)
    return _dataset_page(request, node, values=DATASET_DEFAULTS)


def _dataset_fields(node: Node, fields: Mapping[str, str], errors: FormErrors) -> dict[str, str]:
    """The dataset form's choices, checked; problems go into ``errors`` by their fields."""
    values = {k: (fields.get(k) or "").strip() for k in ("name", "schema", "mapping", "encoding", "classification",
                                                         "policy")}
    errors.text(fields, "name", max_length=300, too_long="Enter a name of 300 characters or fewer")
    errors.choice(fields, "classification", CLASSIFICATIONS, missing="Select the classification of the dataset")
    errors.choice(fields, "policy", POLICIES, missing="Select what to do with invalid rows")
    errors.choice(fields, "encoding", [v for v, _t in ENCODINGS], missing="Select the file's character encoding")
    if values["schema"] and values["schema"] not in node.schemas.names():
        errors.add("schema", "Select a schema from the list")
    if values["schema"]:
        errors.choice(fields, "mapping", ("columns", "file", "suggest", "text"),
                      missing="Select how the file's columns match the schema")
    elif values["mapping"] in ("file", "suggest"):
        errors.add("schema", "Select the schema to map the file's columns into")
    return values


@router.post("/holdings/import/dataset")
async def import_dataset(request: Request, session: SessionDep, node: NodeDep) -> Response:
    actor = session.actor
    _require_import(actor)  # before any of the upload is read
    dataset_limit = limits(request)[0]
    errors = FormErrors()
    values: dict[str, str] = dict(DATASET_DEFAULTS)
    fields: Mapping[str, str] = {}
    try:
        async with memory_form(request, session, {"dataset": (dataset_limit, "dataset"),
                                                  "mapping_file": (MAPPING_LIMIT, "mapping file")}) as form:
            fields = form.fields
            values = _dataset_fields(node, fields, errors)
            dataset, mapping = form.files.get("dataset"), None
            if dataset is None:
                errors.add("dataset", "Select the file to import")
            if values.get("mapping") == "file" and values.get("schema"):
                mapping = _mapping_file(form.files.get("mapping_file"), errors)
            elif values.get("mapping") == "text" and values.get("schema"):
                mapping = form.fields.get("mapping_text", "").strip()
                if not mapping:
                    errors.add("mapping_text", "Enter the mapping, or go back and choose another way to match "
                                               "the columns")
            if errors:
                return _page_again(request, node, values, form.fields, errors, 400)
            assert dataset is not None and dataset.path is not None
            if values["mapping"] == "suggest":
                text = await run_in_threadpool(node.suggest_mapping, actor, dataset.path, values["schema"],
                                               encoding=values["encoding"], label=dataset.filename)
                return _review_page(request, {**values, "mapping": "text"}, text)
            holding = await run_in_threadpool(_import_dataset, node, actor, dataset, values, mapping)
    except (InvalidInput, UsageError) as exc:
        mapping_problem = any(p.file == MAPPING_LABEL for p in exc.problems)
        field = "dataset"
        if mapping_problem or MAPPING_LABEL in exc.message:
            field = "mapping_text" if values.get("mapping") == "text" else "mapping_file"
        elif any(p.field == "mapping_file" for p in exc.problems):
            field = "mapping_file"
        _add_refusal(errors, exc, field)
        return _page_again(request, node, values, fields, errors, exc.http_status)
    return _redirect(f"{WEB}/holdings/{holding.id}?done=imported")


def _page_again(request: Request, node: Node, values: Mapping[str, str], fields: Mapping[str, str],
                errors: FormErrors, status: int) -> Response:
    """The form again with its errors: the review page if a mapping was being reviewed."""
    if values.get("mapping") == "text" and values.get("schema"):
        return _review_page(request, values, fields.get("mapping_text", ""), errors=errors, status=status)
    return _dataset_page(request, node, values=values, errors=errors, status=status)


def _mapping_file(file: UploadedFile | None, errors: FormErrors) -> str | None:
    if file is None or file.path is None:
        errors.add("mapping_file", "Select the mapping file")
        return None
    try:
        text = file.path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        errors.add("mapping_file", "The selected mapping file must be YAML text in UTF-8")
        return None
    if not text.strip():
        errors.add("mapping_file", "The selected mapping file is empty")
    return text


def _import_dataset(node: Node, actor: Actor, dataset: UploadedFile, values: Mapping[str, str],
                    mapping: str | None) -> Holding:
    assert dataset.path is not None
    name = values.get("name") or dataset.filename.rsplit(".", 1)[0] or dataset.filename
    return node.import_dataset(actor, dataset.path, name, encoding=values["encoding"], label=dataset.filename,
                               classification=values["classification"], schema=values.get("schema") or None,
                               mapping=mapping, mapping_label=MAPPING_LABEL, policy=values["policy"])


# Documents -----------------------------------------------------------------------------------


def _document_page(request: Request, *, values: Mapping[str, str] | None = None, errors: FormErrors | None = None,
                   status: int = 200) -> Response:
    return render(request, "holdings/import_document.html", status=status, active_nav="holdings",
                  values=dict(values or {}), errors=errors or FormErrors(), classifications=CLASSIFICATION_CHOICES,
                  max_size=size_words(limits(request)[1]))


@router.get("/holdings/import/document")
async def document_form(request: Request, session: SessionDep) -> Response:
    _require_import(session.actor)
    return _document_page(request, values={"classification": OFFICIAL})


@router.post("/holdings/import/document")
async def import_document(request: Request, session: SessionDep, node: NodeDep) -> Response:
    actor = session.actor
    _require_import(actor)
    errors = FormErrors()

    def start(fields: Mapping[str, str], file: UploadedFile) -> Callable[[BinaryIO], Holding] | None:
        # The title and classification come before the file in the form, so they are known here.
        title = errors.text(fields, "title", max_length=300, too_long="Enter a title of 300 characters or fewer")
        classification = errors.choice(fields, "classification", CLASSIFICATIONS,
                                       missing="Select the classification of the document")
        if errors or classification is None:
            return None

        def work(reader: BinaryIO) -> Holding:
            return node.import_document(actor, reader, file.filename, title=title or None,
                                        classification=classification)
        return work

    document_limit = limits(request)[1]
    limiter: Any = getattr(request.app.state, "document_imports", None)
    try:
        form = await streamed_form(request, session, "document", document_limit, "document", start, limiter)
    except (InvalidInput, UsageError) as exc:
        _add_refusal(errors, exc, "document")
        return _document_page(request, errors=errors, status=exc.http_status)
    values = {k: form.fields.get(k, "") for k in ("title", "classification")}
    if form.file is None:
        errors.add("document", "Select the document to import")
    if errors or form.result is None:
        if not errors:
            errors.add("document", "Select the document to import")
        return _document_page(request, values=values, errors=errors, status=400)
    return _redirect(f"{WEB}/holdings/{form.result.id}?done=imported")
