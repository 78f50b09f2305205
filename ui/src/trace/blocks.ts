// A cell runs its reply's fenced blocks one by one, in one stream: its block ends say where
// each block's output stops (as CellResult.block_outputs does in shared/models.py).

import type { CellResult, StepRecord } from "../types";

export interface BlockOutput {
  stdout: string;
  stderr: string;
  error: string | null;
}

export function blockOutputs(cell: CellResult): BlockOutput[] {
  const ends = cell.blocks ?? [];
  if (ends.length === 0) return [{ stdout: cell.stdout, stderr: cell.stderr, error: cell.error ?? null }];
  let outAt = 0;
  let errAt = 0;
  return ends.map((end, i) => {
    const last = i === ends.length - 1;
    const outTo = last ? cell.stdout.length : end.stdout_end;
    const errTo = last ? cell.stderr.length : end.stderr_end;
    const output = { stdout: cell.stdout.slice(outAt, outTo), stderr: cell.stderr.slice(errAt, errTo), error: end.error ?? null };
    outAt = outTo;
    errAt = errTo;
    return output;
  });
}

/** The code of a model call as the blocks it ran (older records have one `code`). */
export function codeBlocks(step: StepRecord): string[] {
  if (step.blocks && step.blocks.length > 0) return step.blocks;
  return step.code ? [step.code] : [];
}
