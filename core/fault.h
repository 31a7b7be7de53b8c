// Test-only fault points (issue 7: fault injection at scripted points of a training run).
//
// TEST HOOK — environment variable SSIAT_FAULT, read once per process at the first
// fault_point() call:
//     SSIAT_FAULT = POINT[:COUNT[:ACTION]][,POINT[:COUNT[:ACTION]]]...
// When fault_point(POINT) is reached for the COUNT-th time (default 1) in this process, the
// process sends itself ACTION: KILL (default: SIGKILL, a crash at that very instruction), TERM,
// INT, USR1 (the stop signals of core/signals.h, delivered synchronously, so a test knows exactly
// where the run was when it got them), STOP (SIGSTOP: the process freezes there until a
// SIGCONT; a test uses it to hold a run at a known point), or ERROR (throws ssiat::Error
// "injected fault at POINT (SSIAT_FAULT)": an ordinary error on that rank, as a failed read). Each entry fires once. Unset or
// empty: every fault point is a no-op (one load and a branch). A malformed value is a
// ConfigError naming it. Production runs never set it.
//
// Points placed in the code:
//   step.after_backward       trainer: gradients computed, optimizer update not yet applied
//   checkpoint.tensor_written checkpoint writer: after each tensor written into the temporary dir
//   checkpoint.published      checkpoint writer: step dir renamed into place, `latest` not updated
//   checkpoint.latest_updated checkpoint writer: `latest` names the new checkpoint
#pragma once

namespace ssiat {

void fault_point(const char* name);

}  // namespace ssiat
