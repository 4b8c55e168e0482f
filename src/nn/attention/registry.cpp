// The one registration table of attention kinds: name, the tensors a kind declares, its factory
// and what the rest of the library asks about it. Everything that depends on the kind reads it
// from here: ModelConfig's JSON (the "attention" names), Model::Model (parameter registration
// and the modules), load_model's size check (attention_param_count), analysis (keeps_probs,
// exact), and the CLI through include/linformer/config.hpp (bench --kinds, init's log).
//
// A new attention kind touches:
//   1. include/linformer/config.hpp: its AttentionKind value (and any config fields of its own,
//      with their validation and JSON in config.cpp);
//   2. src/nn/attention/<kind>.cpp: the module (class : Attention, or : AttentionCore to reuse
//      the score/softmax/context block) and its table entries (make; declare_* if it has tensors);
//   3. this file: the declarations of those entries below and one row in kKinds;
//   4. for parity with PyTorch, tests/reference/linformer_ref.py (and docs/model.md, format.md).
// Config parsing, the model, model files, analysis, bench --kinds and the CLI's logs then take
// it as they are. What still names kinds on purpose: ModelConfig::validate (Linformer's own
// fields), analysis' full-attention copy (what "exact" means), and the bench harness's table 3
// and --max-train-n (the memory model of full attention's n x n buffers, Linformer's k loop:
// figures about those kinds; a new kind runs in --train-step and --scaling as it is).
#include <string>

#include <fmt/format.h>

#include "linformer/error.hpp"
#include "nn/attention/attention.hpp"

namespace linformer {

namespace attention_detail {
// full.cpp
std::unique_ptr<Attention> make_full_attention(const ModelConfig&, ParamTable&, int layer, const AttentionParams&);
// linformer.cpp
AttentionShared linformer_declare_shared(ParamTable&, const ModelConfig&);
std::vector<int> linformer_declare_layer(ParamTable&, const ModelConfig&, int layer, const std::string& prefix,
                                         const AttentionShared&);
std::unique_ptr<Attention> make_linformer_attention(const ModelConfig&, ParamTable&, int layer,
                                                    const AttentionParams&);
std::string linformer_describe(const ModelConfig&);
// tiled.cpp
std::unique_ptr<Attention> make_tiled_attention(const ModelConfig&, ParamTable&, int layer, const AttentionParams&);
}  // namespace attention_detail

namespace {

using namespace attention_detail;

// In the order of AttentionKind (the order config errors list the names in).
const AttentionKindSpec kKinds[] = {
    // kind, name, keeps_probs, exact, declare_shared, declare_layer, make, describe
    {AttentionKind::Full, "full", true, true, nullptr, nullptr, make_full_attention, nullptr},
    {AttentionKind::Linformer, "linformer", true, false, linformer_declare_shared, linformer_declare_layer,
     make_linformer_attention, linformer_describe},
    {AttentionKind::Tiled, "tiled", false, true, nullptr, nullptr, make_tiled_attention, nullptr},
};

double floats_in(const ParamTable& pt) {
  double n = 0;
  for (const ParamInfo& p : pt.infos()) {
    double e = 1;
    for (int64_t s : p.shape) e *= (double)s;
    n += e;
  }
  return n;
}

}  // namespace

std::span<const AttentionKindSpec> attention_specs() { return kKinds; }

const AttentionKindSpec& attention_spec(AttentionKind kind) {
  for (const AttentionKindSpec& s : kKinds)
    if (s.kind == kind) return s;
  throw Error(fmt::format("attention kind {} is not in the registration table", static_cast<int>(kind)));
}

AttentionShared declare_attention_shared(ParamTable& pt, const ModelConfig& cfg) {
  const AttentionKindSpec& s = attention_spec(cfg.attention);
  return s.declare_shared ? s.declare_shared(pt, cfg) : AttentionShared{};
}

AttentionParams declare_attention_params(ParamTable& pt, const ModelConfig& cfg, int layer, const std::string& b,
                                         const AttentionShared& shared) {
  const AttentionKindSpec& s = attention_spec(cfg.attention);
  const int d = cfg.d_model;
  AttentionParams p;
  QkvoParams& q = p.qkvo;
  q.q_w = pt.add(b + "attn_q.weight", {d, d}, ParamInit::Normal, true);
  q.q_b = pt.add(b + "attn_q.bias", {d}, ParamInit::Zeros, false);
  q.k_w = pt.add(b + "attn_k.weight", {d, d}, ParamInit::Normal, true);
  q.k_b = pt.add(b + "attn_k.bias", {d}, ParamInit::Zeros, false);
  q.v_w = pt.add(b + "attn_v.weight", {d, d}, ParamInit::Normal, true);
  q.v_b = pt.add(b + "attn_v.bias", {d}, ParamInit::Zeros, false);
  if (s.declare_layer) p.own = s.declare_layer(pt, cfg, layer, b, shared);
  q.o_w = pt.add(b + "attn_out.weight", {d, d}, ParamInit::Normal, true);
  q.o_b = pt.add(b + "attn_out.bias", {d}, ParamInit::Zeros, false);
  return p;
}

std::unique_ptr<Attention> make_attention(const ModelConfig& cfg, ParamTable& pt, int layer, const AttentionParams& p) {
  return attention_spec(cfg.attention).make(cfg, pt, layer, p);
}

double attention_param_count(const ModelConfig& cfg, double stop_above) {
  ParamTable shared_pt;
  const AttentionShared shared = declare_attention_shared(shared_pt, cfg);
  double n = floats_in(shared_pt);
  for (int l = 0; l < cfg.n_layers && n <= stop_above; ++l) {
    ParamTable pt;  // a fresh table per layer: only the shapes count
    declare_attention_params(pt, cfg, l, "", shared);
    n += floats_in(pt);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// The public side (include/linformer/config.hpp).

const char* to_string(AttentionKind v) {
  for (const AttentionKindSpec& s : kKinds)
    if (s.kind == v) return s.name;
  return "?";
}

std::vector<AttentionKind> attention_kinds() {
  std::vector<AttentionKind> v;
  for (const AttentionKindSpec& s : kKinds) v.push_back(s.kind);
  return v;
}

AttentionKind attention_kind_from_string(const std::string& name) {
  std::string known;
  for (const AttentionKindSpec& s : kKinds) {
    if (name == s.name) return s.kind;
    known += fmt::format("{}\"{}\"", known.empty() ? "" : ", ", s.name);
  }
  throw ConfigError(fmt::format("attention \"{}\" is unknown; allowed values: {}", name, known));
}

bool attention_keeps_probs(AttentionKind v) { return attention_spec(v).keeps_probs; }
bool attention_is_exact(AttentionKind v) { return attention_spec(v).exact; }

std::string attention_config_summary(const ModelConfig& cfg) {
  const AttentionKindSpec& s = attention_spec(cfg.attention);
  return s.describe ? s.describe(cfg) : std::string();
}

}  // namespace linformer
