"""Write docs/tutorial.ipynb (outputs stripped): the toolkit in a notebook, cell by cell.

Run `python scripts/make_tutorial.py` after editing the cells below; tests/test_tutorial.py
executes the notebook end to end.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# gmg in a notebook

Seeds trained identically, shown a red line and a yellow gem: colour or shape? This notebook
loads the bundled zoo, looks at a level through each RGB channel, evaluates two agents, ablates
a channel and watches the preference move, fits one probe, and draws a population's vector
field. Everything runs on a CPU in a minute or two."""),
    ("code", """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from gmg.experiments.population import population

agents = population("zoo:yellow-line")  # resolved once; every stage takes it as it is
work = Path(tempfile.mkdtemp())
print(len(agents), "agents, trained on", agents.trained_on)"""),
    ("md", "## A level, and what each RGB channel shows of it"),
    ("code", """from gmg.experiments.plots.levels import channel_split, level_frames

frames = level_frames([3], ("red_line", "yellow_gem"), "black")  # evaluation level 3, two objects
fig, ax = plt.subplots(figsize=(10, 3))
ax.imshow(channel_split(frames, "tint", scale=2))
ax.set_axis_off()
ax.set_title("the agent's view, then its R, G and B channels")"""),
    ("md", "## Two agents in one setting\n\nPreference = how often the agent reaches the red line first (Wilson 95% CI)."),
    ("code", """from gmg.experiments.evaluate import evaluate, metrics

two = agents.select([0, 1])
clean = metrics(evaluate(two, ["red_line-vs-yellow_gem"], work / "eval", device="cpu", n_levels=60, progress=False))
clean[["agent", "setting", "preference", "preference_lo", "preference_hi", "capability"]]"""),
    ("md", """## Ablate a channel and see the preference move

`ablate:g@obj2` zeroes the green channel on the yellow gem's pixels only (it becomes a red
gem to the agent; every other pixel is untouched)."""),
    ("code", """from gmg.interp.interventions import parse_intervention

ablated = metrics(evaluate(two, ["red_line-vs-yellow_gem"], work / "eval", device="cpu", n_levels=60,
                           intervention=parse_intervention("ablate:g@obj2"), progress=False))
clean[["agent", "preference"]].merge(ablated[["agent", "preference"]], on="agent", suffixes=("_clean", "_ablated"))"""),
    ("md", "## One linear probe: where is the red line, read from the first block's pooled activations?"),
    ("code", """from gmg.probes.activations import collect_activations, flatten
from gmg.probes.datasets import probe_scenes
from gmg.probes.linear import LinearProbe, holdout_score, split

scenes = probe_scenes("red_line", 240, seed=0)
acts = collect_activations(agents[0].load(), scenes.obs, ["blocks.0.hook_pool"])
X, y = flatten(acts["blocks.0.hook_pool"]), scenes.label("cell")
train, test = split(len(y), seed=0)
score, _ = holdout_score(LinearProbe(n_components=32), X, y, train, test)
print(f"held-out accuracy {score.accuracy:.2f} [{score.ci_low:.2f}, {score.ci_high:.2f}] on {score.n_test} scenes "
      f"(chance about {1 / len(set(y)):.2f})")"""),
    ("md", "## A population's vector field\n\nEach agent's most likely move from every free cell; then the same seeing only green, changed moves in red."),
    ("code", """from IPython.display import Image, display

from gmg.experiments.vfield import vector_fields

fields = vector_fields(agents.select(list(range(8))), "red_line-vs-yellow_gem", level=3, out_dir=work / "vfield",
                       intervention="isolate:g")
display(Image(str(fields["clean"])), Image(str(fields["intervened"])))"""),
]


def main() -> None:
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
    nbformat.write(nb, path)
    print(path)


if __name__ == "__main__":
    main()
