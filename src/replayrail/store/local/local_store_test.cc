#include "replayrail/store/local/local_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "replayrail/store/testing/conformance.h"
#include "replayrail/store/testing/temp_dir.h"

namespace replayrail::testing {

// Each store gets its own directory, removed with the store.
std::shared_ptr<store::Store> make_local_store(boost::asio::any_io_executor) {
  auto dir = std::make_shared<TempDir>("local-conformance");
  auto opened = store::LocalStore::open({.dir = dir->path()});
  if (!opened) throw std::runtime_error(opened.error().message);
  std::shared_ptr<store::LocalStore> s = *opened;
  return std::shared_ptr<store::Store>(s.get(), [s, dir](store::Store*) mutable {
    s.reset();
    dir.reset();
  });
}

INSTANTIATE_TEST_SUITE_P(Local, StoreConformance,
                         ::testing::Values(StoreFactory{"local", make_local_store}),
                         StoreConformance::name_of);

}  // namespace replayrail::testing
