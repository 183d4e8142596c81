"""The documentation cannot drift: the configuration page is what the generator writes from the settings, every
FASTLANE_* variable the deploy files read is on it, and every relative link of README.md and docs/ leads somewhere."""

import re
from pathlib import Path

import pytest

from shared.process import settings_doc
from shared.process.settings import RunnerSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_committed_configuration_page_is_what_the_generator_writes_now() -> None:
    committed = (ROOT / settings_doc.PAGE).read_text()
    assert committed == settings_doc.render(ROOT), "docs/configuration.md is stale: run `make docs` and commit it"


def test_every_setting_has_a_description_and_a_row_on_the_page() -> None:
    page = settings_doc.render(ROOT)
    for cls in settings_doc.settings_classes():
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"
            assert f"| `FASTLANE_{name.upper()}` |" in page


def test_a_services_own_settings_are_read_by_that_service_and_the_common_ones_by_all_five() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line.split(" | ") for line in settings_doc.render(ROOT).splitlines()}
    assert rows["FASTLANE_HOST_LOST_AFTER_S"][3] == "runner"
    assert rows["FASTLANE_KAFKA_BOOTSTRAP"][3].startswith("api, scheduler, runner, recorder, notifier")
    assert set(RunnerSettings.model_fields) > set(Settings.model_fields)


def test_every_fastlane_variable_of_the_deploy_files_is_documented() -> None:
    page = (ROOT / settings_doc.PAGE).read_text()
    sources = [ROOT / "Makefile", *(p for p in (ROOT / "deploy").rglob("*") if p.is_file())]
    named = {v for p in sources for v in re.findall(r"FASTLANE_[A-Z0-9_]*[A-Z0-9]", p.read_text(errors="replace"))}
    assert named, "no FASTLANE_* variable found in the deploy files: the scan is broken"
    assert sorted(v for v in named if f"`{v}`" not in page) == []


def test_the_readme_names_every_module_of_shared_and_every_service_package() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {line.split(" | ")[0].strip("| `"): line for line in readme.splitlines() if line.startswith("| `")}
    unnamed = []
    for part in sorted((ROOT / "shared").glob("*/*")):
        name = part.name if part.suffix == ".py" else f"{part.name}/"
        is_module = part.suffix == ".py" or (part / "__init__.py").exists()
        if is_module and part.name != "__init__.py" and f"`{name}`" not in rows.get(f"shared/{part.parent.name}/", ""):
            unnamed.append(f"shared/{part.parent.name}/{name}")
    unnamed += [f"services/{p.parent.name}/" for p in (ROOT / "services").glob("*/__init__.py")]
    assert [u for u in unnamed if u not in rows] == []


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def broken_links(page: Path, root: Path) -> list[str]:
    """Relative links of the page to a file, or a heading of a markdown file, that does not exist."""
    broken = []
    for target in _relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.is_relative_to(root):
            continue  # the workspace beside the checkout (../shared/docs), not this repository's
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    assert broken_links(page, ROOT) == []


def named_paths(text: str, root: Path) -> list[str]:
    """Repository paths (`services/api/orders.py`) and modules (`python -m services.migrate`) the text names that
    do not exist. `shared/docs/` is the workspace's, beside the checkout."""
    paths = re.findall(r"`((?:shared|services|tests|bench|deploy)/[\w./-]*)`", text)
    modules = [m.replace(".", "/") for m in re.findall(r"python -m ((?:shared|services)[\w.]*)", text)]
    missing = [p for p in paths if not p.startswith("shared/docs/") and not (root / p).exists()]
    return missing + [m for m in modules if not (root / f"{m}.py").exists() and not (root / m).is_dir()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_module_the_docs_name_exists(page: Path) -> None:
    assert named_paths(page.read_text(), ROOT) == []


def test_the_path_check_refuses_a_moved_module() -> None:
    text = (
        "`shared/infra/kafka/producer.py`, `shared/kafka.py`, `python -m services.migrate`, `python -m services.gone`"
    )
    assert named_paths(text, ROOT) == ["shared/kafka.py", "services/gone"]


def test_the_link_check_refuses_a_missing_file_or_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("## Runners and farms\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n[a](missing.md) [b](#top) [c](other.md#runners-and-farms) [d](other.md#nowhere) [e](#gone)"
        " [f](https://example.com)\n```\n[g](in-code.md)\n```\n"
    )
    assert broken_links(page, tmp_path) == ["missing.md", "other.md#nowhere", "#gone"]
