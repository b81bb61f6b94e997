"""The benchmark's report: Markdown tables of the collected results beside the published
figures, results.json and results.md, and the results section of a docs page, written between
its markers."""

import json
import os
import platform

import numpy as np

from durr_tf.core import tasks
from durr_tf.tools.benchmark import figures, methods

START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def _table(header, rows):
    """A Markdown table's lines from its header and rows of cell strings."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def _quality_cell(value, paper):
    """PSNR / SSIM of a method at one level, its published PSNR in brackets; – where not run."""
    text = "–" if value is None else f"{value['psnr']:.2f}"
    if value is not None and value["ssim"] is not None:
        text += f" / {value['ssim']:.4f}"
    return text + (f" ({paper:.2f})" if paper else "")


def markdown(results, checks, counts, figures_dir):
    """The results section: quality tables, the peer check, parameters and speed, figures."""
    parts = []
    for task_name, entry in results.items():
        order = methods.method_order(task_name, entry)
        published = methods.PUBLISHED[task_name]
        parts.append(f"**{entry['set']} ({entry['images']} images)**: PSNR (dB) / SSIM, "
                     "published PSNR on the whole set in brackets.\n")
        rows = [[level, *(_quality_cell(row.get(m), published.get(m, {}).get(int(float(level))))
                          for m in order)] for level, row in entry["levels"].items()]
        parts += _table([tasks.get(task_name).level_symbol, *order], rows)
        parts.append("")
    if checks:
        parts.append("**Peer check**: the rebuilt peers on their whole test sets against their "
                     f"own published PSNR (must agree within {methods.PEER_CHECK_TOLERANCE} dB).\n")
        parts += _table(["method", "level", "images", "ours", "published", "within tolerance"], [
            [row["method"], str(row["level"]), str(row["images"]), f"{row['ours']:.2f}",
             f"{row['published']:.2f}", "yes" if row["met"] else "NO"] for row in checks])
        parts.append("")
    parts.append("**Size and speed** (seconds per image, mean over levels). Each row was timed "
                 "when its results were computed, on the machine it names; rows from different "
                 "machines or runs compare only roughly.\n")
    speed = []
    for task_name, entry in results.items():
        for method in methods.method_order(task_name, entry):
            values = [row[method] for row in entry["levels"].values() if method in row]
            timed = [v for v in values if v["seconds"] is not None]
            steps = [v["steps"] for v in values if v["steps"] is not None]
            if not timed:
                continue
            size = counts.get(method, counts.get(f"DURR {task_name} (restorer + policy)"))
            machines = sorted({v.get("timed_on", "not recorded") for v in timed})
            speed.append([f"{method} ({entry['set']})", f"{size:,}" if size else "–",
                          f"{np.mean([v['seconds'] for v in timed]):.2f}",
                          f"{np.mean(steps):.1f}" if steps else "–", "; ".join(machines)])
    parts += _table(["method", "parameters", "s/image", "mean steps", "timed on"], speed)
    parts.append("")
    for name, caption in figures.FIGURES:
        parts.append(f"![{caption}]({figures_dir}/{name})\n")
    return "\n".join(parts) + "\n"


def ablation_section(ablation_dir, figures_dir):
    """The Table 1 ablation's table and figure (from durr_tf.tools.ablation), if it was run."""
    path = os.path.join(ablation_dir, "results.md")
    if not os.path.exists(path):
        return ""
    with open(path) as handle:
        table = handle.read()
    return (f"**Training policy ablation (the paper's Table 1 and Fig. 4)**: {table}\n"
            f"![Peak PSNR and peak step of the three training policies]"
            f"({figures_dir}/table1.png)\n")


def replace_section(page, text):
    """Replaces what lies between the page's benchmark markers with `text`, by rename so that a
    kill never leaves half a page."""
    with open(page) as handle:
        content = handle.read()
    if START not in content or END not in content:
        raise ValueError(f"{page} has no {START} … {END} markers")
    head, rest = content.split(START, 1)
    tail = rest.split(END, 1)[1]
    with open(page + ".tmp", "w") as handle:
        handle.write(f"{head}{START}\n{text}{END}{tail}")
    os.replace(page + ".tmp", page)


def write(out, command, seed, results, checks, counts, page=None, ablation_dir=""):
    """Writes results.json and results.md into `out` and, given a page, its results section
    (with the ablation's, given its folder); returns that section's text."""
    base = os.path.dirname(os.path.abspath(page or out))
    text = (f"Written by `{command}` from the cached result of every method (`make results` "
            f"runs them all), on {platform.machine()} with {os.cpu_count()} CPU cores.\n\n"
            + markdown(results, checks, counts, os.path.relpath(out, base)))
    if ablation_dir:
        text += ablation_section(ablation_dir, os.path.relpath(ablation_dir, base))
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump({"command": command, "seed": seed, "results": results, "peer_check": checks,
                   "parameters": counts, "published": methods.PUBLISHED}, handle, indent=2)
    with open(os.path.join(out, "results.md"), "w") as handle:
        handle.write(markdown(results, checks, counts, "."))
    if page:
        replace_section(page, text)
    return text
