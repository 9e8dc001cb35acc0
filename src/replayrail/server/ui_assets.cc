#include "replayrail/server/ui_assets.h"

#include <string_view>

namespace replayrail::server {

namespace ui_files {
// Generated (ui_files.cc in the build directory), or none when the dashboard is not built.
extern const EmbeddedFile kFiles[];
extern const std::size_t kFileCount;
}  // namespace ui_files

namespace {

std::string_view content_type(std::string_view path) {
  constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".json", "application/json"},
      {".woff2", "font/woff2"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (path.ends_with(ext)) return type;
  }
  return "application/octet-stream";
}

const EmbeddedFile* find(std::string_view path) {
  for (std::size_t i = 0; i < ui_files::kFileCount; ++i) {
    if (ui_files::kFiles[i].path == path) return &ui_files::kFiles[i];
  }
  return nullptr;
}

}  // namespace

std::optional<UiAsset> ui_asset(std::string_view path) {
  if (const auto* file = path.empty() ? nullptr : find(path)) {
    return UiAsset{file->body, content_type(path), path.starts_with("assets/")};
  }
  if (path.starts_with("assets/")) return std::nullopt;
  const auto* index = find("index.html");
  if (!index) return std::nullopt;
  return UiAsset{index->body, content_type("index.html"), false};
}

}  // namespace replayrail::server
