"""Define-then-run: trace a graph once with placeholders, compile it, run it for many inputs.

The package has one module per idea, each importing only those listed before it:

- `instruction`: the tape's vocabulary (`Instruction`, slot kinds), shared by everything below;
- `rule_source`: the derivative table's rules traced into Python source templates;
- `float_interpreter`: a large Program run on floats by a loop over its tape, calling one
  compiled kernel per rule;
- `float_mode`: a Program as generated straight-line Python, for floats (the interpreter above
  `GENERATE_MAX_INSTRUCTIONS`);
- `plan`: a planned Program as public, engine-neutral data (`Plan`, `Read`, `MapGroup`,
  `SumsGroup`), which `Program.plan()` returns and the exports (`chainrule.export`) run; it imports
  nothing of the compiler;
- `batch_steps`: the vectorised steps of batch mode (one op on many rows; sums of products as
  matrix products);
- `batch_plan`: batch mode's plan: which instructions form which step, the buffer layout, and
  running a batch (also with the parameters taken from one array);
- `program`: `Program` and `compile` (numpy is imported only when batch mode is first used);
- `jit`: tracing a Python function on its first call.
"""

from .instruction import Instruction
from .jit import JitFunction, jit
from .program import Program, compile  # noqa: A004

__all__ = ["Instruction", "JitFunction", "Program", "compile", "jit"]
