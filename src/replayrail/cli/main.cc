// `replayrail`: the server (`serve`, `archive`, `audit verify`: server_commands.h), its
// command-line clients (`publish`, `replay`, `tail`, `groups …`) and `token`
// (client_commands.h). Each setting comes from its flag, else its environment variable, else a
// TOML file (`--config`), else its default.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "replayrail/cli/client.h"
#include "replayrail/cli/client_commands.h"
#include "replayrail/cli/server_commands.h"

namespace {

// Reads `--config` TOML files for CLI11 so that the precedence is the one DESIGN §4 names:
// flags, then the environment, then the file. (CLI11 on its own lets the file beat the
// environment: it fills options from the file first and from the environment only when still
// unset.) A setting whose environment variable is set is left out of the file's items. Keys at
// the top of the file are `serve`'s, so a server's file needs no `[serve]` section.
class LayeredConfig : public CLI::ConfigTOML {
 public:
  explicit LayeredConfig(const CLI::App& app) : app_(app) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    std::vector<CLI::ConfigItem> out;
    for (auto& item : CLI::ConfigTOML::from_config(input)) {
      const bool section_mark = item.name == "++" || item.name == "--";
      if (item.parents.empty() && !section_mark) item.parents = {"serve"};
      if (!section_mark && set_in_environment(item)) continue;
      out.push_back(std::move(item));
    }
    return out;
  }

 private:
  bool set_in_environment(const CLI::ConfigItem& item) const {
    const CLI::App* command = &app_;
    for (const auto& name : item.parents) {
      try {
        command = command->get_subcommand(name);
      } catch (const CLI::OptionNotFound&) {
        return false;  // not a command: refused as unknown when applied
      }
    }
    const CLI::Option* option = command->get_option_no_throw("--" + item.name);
    if (!option || option->get_envname().empty()) return false;
    const char* value = std::getenv(option->get_envname().c_str());
    return value && *value;
  }

  const CLI::App& app_;
};

}  // namespace

int main(int argc, char** argv) {
  using namespace replayrail::cli;
  CLI::App app{"ReplayRail: durable, replayable, auditable realtime events"};
  app.require_subcommand(1);
  app.set_config("--config", "", "TOML file with settings (flags and environment win)");
  app.config_formatter(std::make_shared<LayeredConfig>(app));
  // A misspelt setting in the file is an error, not a setting silently left at its default.
  app.allow_config_extras(CLI::config_extras_mode::error);
  ServerCommands server(app);
  ClientCommands clients(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ConfigError& e) {
    std::fprintf(stderr,
                 "replayrail: --config: %s (each key is a setting of `replayrail serve --help`)\n",
                 e.what());
    return kUsage;
  } catch (const CLI::ParseError& e) {
    // Prints the help (exit 0) or what was wrong with the arguments.
    return app.exit(e) == 0 ? 0 : kUsage;
  }
  if (auto code = server.run()) return *code;
  return clients.run();
}
