// Checks our flatbuffers patch (flatbuffers-zero-on-float-to-int.patch) does what Wazuh's
// router relies on, before the router is built with it (compile.sh). Exit 0 when:
//   - without the option, a float for an integer field is an error (flatbuffers' own behaviour);
//   - with it, the float parses as 0, and integers, floats in float fields and strings are as before.
#include <cstdio>
#include <string>

#include "flatbuffers/idl.h"

static const char *kSchema =
    "table T { n:int = 9; size:long = 9; ratio:double; name:string; } root_type T;";

// Parses json with a fresh parser; returns its error text, or the table as text (fields that
// differ from their default) when it parsed.
static std::string parse(bool zero_on_float_to_int, const char *json) {
    flatbuffers::Parser parser;
    parser.opts.skip_unexpected_fields_in_json = true;
    parser.opts.zero_on_float_to_int = zero_on_float_to_int;
    if (!parser.Parse(kSchema)) return "schema: " + parser.error_;
    if (!parser.Parse(json)) return "error: " + parser.error_;
    std::string text;
    if (const char *err = flatbuffers::GenText(parser, parser.builder_.GetBufferPointer(), &text)) {
        return std::string("error: GenText: ") + err;
    }
    std::string flat;
    for (char c : text) {
        if (c != ' ' && c != '\n') flat += c;
    }
    return flat;
}

static int expect(const char *what, const std::string &got, const std::string &want, bool prefix) {
    bool ok = prefix ? got.compare(0, want.size(), want) == 0 : got == want;
    std::printf("%s %s: %s\n", ok ? "ok  " : "FAIL", what, got.c_str());
    return ok ? 0 : 1;
}

int main() {
    int failed = 0;
    failed += expect("off: a float for an int is an error",
                     parse(false, "{\"n\": 1.5}"), "error: ", true);
    failed += expect("on: a float for an int is 0",
                     parse(true, "{\"n\": 1.5, \"size\": 2.0e3, \"name\": \"x\"}"), "{n:0,size:0,name:\"x\"}", false);
    failed += expect("on: integers, floats in float fields, strings as before",
                     parse(true, "{\"n\": 7, \"size\": -3, \"ratio\": 0.25, \"name\": \"y\"}"),
                     "{n:7,size:-3,ratio:0.25,name:\"y\"}", false);
    failed += expect("on: a float in a string for an int is still an error",
                     parse(true, "{\"n\": \"1.5\"}"), "error: ", true);
    return failed == 0 ? 0 : 1;
}
