// Chapter 14, "Compiler & Triton Optimization": its examples register themselves from the files
// beside this one; this file tells the harness where the chapter's expectation files live.
#include "harness/registry.h"

static const aisp::harness::ChapterRegistration ch14_registration("ch14", AISP_CH14_DIR);
