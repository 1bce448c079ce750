// The process state CUDA variants are timed in (harness/process_state.h): its names, the environment
// variable that carries it to the variants' processes, the manifest's record, and the CLI's checks.
#include "harness/process_state.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/manifest.h"
#include "scoped_env.h"

namespace aisp::harness {
namespace {

TEST(ProcessState, NamesRoundTripAndUnknownOnesSayWhatIsValid) {
  for (CudaProcessState s : {CudaProcessState::multi_stream, CudaProcessState::single_stream})
    EXPECT_EQ(parse_process_state(name_of(s)), s);
  try {
    parse_process_state("fresh");
    FAIL() << "accepted an unknown state";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'fresh'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("multi-stream"), std::string::npos) << msg;
    EXPECT_NE(msg.find("single-stream"), std::string::npos) << msg;
  }
  EXPECT_EQ(describe(CudaProcessState::multi_stream), "multi-stream (64 operations on a side stream before setup)");
  EXPECT_NE(describe(CudaProcessState::single_stream).find("single-stream"), std::string::npos);
}

TEST(ProcessState, TheEnvironmentCarriesItAndTheManifestRecordsIt) {
  const test::ScopedUnsetEnv saved(kProcessStateEnv);
  EXPECT_EQ(process_state_from_env(), CudaProcessState::multi_stream);  // the default
  set_process_state_env(CudaProcessState::single_stream);
  EXPECT_EQ(process_state_from_env(), CudaProcessState::single_stream);
  const nlohmann::json m = collect_manifest(0, {"aisp", "test"});
  const std::string recorded = m.at("measurement").at("cuda_process_state");
  EXPECT_TRUE(recorded == describe(CudaProcessState::single_stream) || recorded == "no CUDA backend") << recorded;
  ::setenv(kProcessStateEnv, "sideways", 1);
  EXPECT_THROW(process_state_from_env(), Error);
}

}  // namespace
}  // namespace aisp::harness
