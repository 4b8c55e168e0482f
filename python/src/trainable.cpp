// linformer._core._TrainableModel: a linformer::Model in training form (parameters and gradients
// as numpy views of its own blocks, encode and backward from a gradient of the hidden states),
// the engine under linformer.torch.Encoder (python/linformer/torch.py). Not thread-safe: one
// forward, then its backward, at a time.
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "common.hpp"
#include "linformer/batch.hpp"
#include "linformer/checkpoint.hpp"
#include "linformer/error.hpp"
#include "linformer/model.hpp"

namespace linformer::python {

namespace {

struct Trainable {
  std::unique_ptr<Model> model;
  int64_t forwards = 0;  // encode calls so far (the torch module checks backward follows its forward)
  int B = 0, n = 0;      // of the last encode

  int index(const std::string& name) const {
    const int i = model->params().find(name);
    if (i < 0) throw ConfigError(fmt::format("no parameter named '{}'", name));
    return i;
  }
};

// A numpy view of n floats at p, shaped as parameter i, that keeps `owner` alive.
py::array_t<float> view(const Trainable& t, int i, float* p, py::handle owner) {
  const ParamInfo& info = t.model->params().info(i);
  std::vector<py::ssize_t> shape(info.shape.begin(), info.shape.end());
  return py::array_t<float>(shape, p, owner);
}

}  // namespace

void register_trainable(py::module_& m) {
  py::class_<Trainable> cls(m, "_TrainableModel",
                            "A model in training form for linformer.torch (parameters as numpy views, encode, "
                            "backward from a gradient of the hidden states). Not thread-safe.");
  cls.def(py::init([](py::handle config, uint64_t seed) {
            if (!py::isinstance<py::dict>(config)) throw ConfigError("config: expected a dict of model config fields");
            const ModelConfig cfg = ModelConfig::from_json(from_python(config, "config"));
            auto t = std::make_unique<Trainable>();
            t->model = std::make_unique<Model>(cfg);
            t->model->init(seed);
            return t;
          }),
          py::arg("config"), py::arg("seed") = 0, "A new model from a config dict, initialised from seed.");
  cls.def_static(
      "from_file",
      [](const std::string& path) {
        auto t = std::make_unique<Trainable>();
        py::gil_scoped_release nogil;
        t->model = load_model(path);
        return t;
      },
      py::arg("path"), "The model of a model file (.safetensors).");
  cls.def_property_readonly(
      "config", [](const Trainable& t) { return to_python(t.model->config().to_json()); }, "The config as a dict.");
  cls.def(
      "param_names",
      [](const Trainable& t) {
        std::vector<std::string> names;
        for (const ParamInfo& p : t.model->params().infos()) names.push_back(p.name);
        return names;
      },
      "The parameter names, in the order of the parameter table.");
  cls.def(
      "trainable", [](const Trainable& t, const std::string& name) { return t.model->params().info(t.index(name)).trainable; },
      py::arg("name"), "Whether the parameter is trained (the frozen random projection is not).");
  cls.def(
      "param",
      [](py::object self, const std::string& name) {
        Trainable& t = self.cast<Trainable&>();
        const int i = t.index(name);
        return view(t, i, t.model->params().data(i), self);
      },
      py::arg("name"), "A writable numpy view of the parameter's values (no copy).");
  cls.def(
      "grad",
      [](py::object self, const std::string& name) {
        Trainable& t = self.cast<Trainable&>();
        const int i = t.index(name);
        return view(t, i, t.model->params().grad(i), self);
      },
      py::arg("name"), "A numpy view of the parameter's gradient (accumulated by backward).");
  cls.def("zero_grad", [](Trainable& t) { t.model->zero_grad(); }, "Sets every gradient to 0.");
  cls.def(
      "train", [](Trainable& t, bool on) { t.model->train(on); }, py::arg("mode") = true,
      "Training mode (dropout on) or not.");
  cls.def(
      "set_dropout_seed", [](Trainable& t, uint64_t seed) { t.model->set_dropout_seed(seed); }, py::arg("seed"),
      "Seeds the dropout masks of the following forwards.");
  cls.def_property_readonly("forwards", [](const Trainable& t) { return t.forwards; }, "encode calls so far.");
  cls.def(
      "encode",
      [](Trainable& t, py::handle ids, py::handle mask) {
        const auto seqs = ids_from_python(ids, mask, "ids");
        if (seqs.empty()) throw InputError("ids: no sequences");
        for (size_t b = 0; b < seqs.size(); ++b)
          if (seqs[b].empty()) throw InputError(fmt::format("ids: input {} is empty", b));
        const Batch batch = Batch::from_sequences(seqs);
        std::vector<float> hidden;
        {
          py::gil_scoped_release nogil;
          ComputeScope scope(default_precision());
          const float* h = t.model->encode(batch);
          hidden.assign(h, h + (size_t)batch.B * batch.n * t.model->config().d_model);
        }
        ++t.forwards;
        t.B = batch.B;
        t.n = batch.n;
        return to_numpy(std::move(hidden), {batch.B, batch.n, t.model->config().d_model});
      },
      py::arg("ids"), py::arg("mask") = py::none(),
      "The hidden states [B, n, d_model] (a copy), padded as Model.forward pads; keeps what backward needs.");
  cls.def(
      "backward",
      [](Trainable& t, py::array_t<float, py::array::c_style | py::array::forcecast> dhidden) {
        const int d = t.model->config().d_model;
        if (dhidden.ndim() != 3 || dhidden.shape(0) != t.B || dhidden.shape(1) != t.n || dhidden.shape(2) != d)
          throw InputError(fmt::format("dhidden: shape {} but the last encode gave [{}, {}, {}]",
                                       py::str(dhidden.attr("shape")).cast<std::string>(), t.B, t.n, d));
        const float* g = dhidden.data();
        py::gil_scoped_release nogil;
        ComputeScope scope(default_precision());
        t.model->backward_from_hidden(g);
      },
      py::arg("dhidden"),
      "Backpropagates a gradient of the last encode's hidden states into the gradients (accumulating).");
  cls.def(
      "save",
      [](const Trainable& t, const std::string& path) {
        py::gil_scoped_release nogil;
        save_model(*t.model, path);
      },
      py::arg("path"), "Writes a model file (linformer.load reads it).");
}

}  // namespace linformer::python
