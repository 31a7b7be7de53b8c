// Subcommands of the `ssiat` CLI. Each add_*_command registers its subcommand (options and
// callback) on the app; callbacks throw ssiat::Error, which main() turns into one line on
// stderr and a non-zero exit.
#pragma once

#include <CLI/CLI.hpp>

namespace ssiat::cli {

void add_data_command(CLI::App& app);   // ssiat data prepare
void add_train_command(CLI::App& app);  // ssiat train
void add_bench_command(CLI::App& app);  // ssiat bench train-step
void add_tokenizer_command(CLI::App& app);  // ssiat tokenizer train|encode|decode|stats
void add_keygen_command(CLI::App& app);     // ssiat keygen
void add_attest_command(CLI::App& app);     // ssiat attest
void add_verify_command(CLI::App& app);     // ssiat verify
void add_init_root_command(CLI::App& app);  // ssiat init-root
void add_model_commands(CLI::App& app);     // ssiat export|logits|generate|eval
void add_plan_command(CLI::App& app);       // ssiat plan
void add_plot_command(CLI::App& app);       // ssiat plot

}  // namespace ssiat::cli
