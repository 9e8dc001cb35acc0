// The dashboard's files when it is not built into this binary (RR_BUILD_UI=OFF): none.
#include "replayrail/server/ui_assets.h"

namespace replayrail::server::ui_files {

extern const EmbeddedFile kFiles[] = {{{}, {}}};
extern const std::size_t kFileCount = 0;

}  // namespace replayrail::server::ui_files
