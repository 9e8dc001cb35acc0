#pragma once

// The dashboard (ui/, DESIGN §7), built by Vite at build time and embedded in the binary
// (cmake/embed_files.cmake): what GET /ui/… serves.

#include <cstddef>
#include <optional>
#include <string_view>

namespace replayrail::server {

struct EmbeddedFile {
  std::string_view path;  // relative to the dashboard's root: "index.html", "assets/index-…js"
  std::string_view body;
};

struct UiAsset {
  std::string_view body;
  std::string_view content_type;
  // Vite names assets by their content's hash: they never change, so browsers may keep them.
  bool immutable = false;
};

// The file at `path` under /ui/; the app's page (index.html) for "" and for any path that is
// not a file and not under assets/ (the app's own routes). nullopt: no such asset, or the
// dashboard was not built into this binary (RR_BUILD_UI=OFF).
std::optional<UiAsset> ui_asset(std::string_view path);

}  // namespace replayrail::server
