"""See backprop happen: `explore(root)` replays the forward and backward pass over your own graph.

`explore(root)` records, in Python, the forward values and then the backward sweep node by node:
for every input of every node, the gradient arriving from above, the local derivative (from the
derivative table, the same rules `backward()` runs) and their product, which is added into the
input's gradient. It returns an `Explorer`: shown inline in Jupyter, `.save("page.html")` writes one
self-contained page (inline SVG, CSS and JavaScript, no network) whose buttons and keys step
through those records. The page's script only displays the numbers recorded here.

The package has two parts: `recorder` (the replay) and `page` (the page assembly, with the page's
HTML, CSS and JavaScript as files in `assets/`). `chainrule explore "EXPR" a=2 b=-3 -o page.html`
(`chainrule.cli.explore`) does the same from the command line. docs/explore.md describes the page.
"""

from .page import Explorer, explore
from .recorder import DEFAULT_MAX_NODES, MAX_NODES_LIMIT, Contribution, Step

__all__ = ["DEFAULT_MAX_NODES", "MAX_NODES_LIMIT", "Contribution", "Explorer", "Step", "explore"]
