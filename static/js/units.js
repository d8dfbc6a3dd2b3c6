// The lab forms: beside a value typed in a unit other than the canonical one, show it
// converted ("= 250 mg/L") as the user types. Only a preview: the server converts, checks
// and asks for confirmation by itself, and the form works the same without this script.
(function () {
  var NUMBER = /^\s*(<=|>=|<|>|≤|≥)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*$/;

  function plain(x) {
    // At most 6 decimals, as stored; no trailing zeros, no exponent.
    var text = x.toFixed(6).replace(/\.?0+$/, "");
    return text === "-0" ? "0" : text;
  }

  function update(value, unit, out) {
    var factors = JSON.parse(unit.getAttribute("data-unit-factors") || "{}");
    var canonical = unit.getAttribute("data-canonical-unit");
    var f = factors[unit.value];
    var m = NUMBER.exec(value.value);
    if (!f || unit.value === canonical || !m) { out.textContent = ""; return; }
    var converted = parseFloat(m[2]) * parseFloat(f[0]) / parseFloat(f[1]);
    var cmp = (m[1] || "").replace("≤", "<=").replace("≥", ">=");
    out.textContent = "= " + cmp + plain(converted) + " " + canonical;
  }

  document.querySelectorAll("[data-converts]").forEach(function (out) {
    var value = document.getElementById(out.getAttribute("data-value"));
    var unit = document.getElementById(out.getAttribute("data-unit"));
    if (!value || !unit) { return; }
    var run = function () { update(value, unit, out); };
    value.addEventListener("input", run);
    unit.addEventListener("change", run);
    run();
  });
})();
