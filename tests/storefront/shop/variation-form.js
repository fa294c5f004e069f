// A stand-in for WooCommerce's add-to-cart-variation.js, for the widget's browser test: the
// same events on the same element, raised the same way (jQuery's trigger on the variations
// form, which plain DOM listeners never see), 100 ms after start as WooCommerce's first check.
jQuery(function ($) {
  var $form = $("form.variations_form");
  var variations = $form.data("product_variations");

  function chosen() {
    var data = {}, complete = true;
    $form.find(".variations select").each(function () {
      var name = $(this).data("attribute_name") || this.name;
      data[name] = $(this).val() || "";
      if (!data[name]) complete = false;
    });
    return complete ? data : null;
  }

  function matches(variation, data) {
    return Object.keys(variation.attributes).every(function (name) {
      var wanted = variation.attributes[name];
      return !wanted || !data[name] || wanted === data[name];
    });
  }

  function check() {
    var data = chosen();
    var variation = data && variations.filter(function (v) { return matches(v, data); })[0];
    $form.find("input.variation_id").val("");
    if (!variation) {
      $form.find(".single_variation").empty();
      $form.trigger("reset_data");
      return;
    }
    $form.find(".single_variation").html(variation.availability_html);
    $form.find("input.variation_id").val(variation.variation_id);
    $form.find(".single_add_to_cart_button").toggleClass("disabled", !variation.is_in_stock);
    $form.trigger("found_variation", [variation]);
  }

  $form.on("change", ".variations select", check);
  $form.on("click", ".reset_variations", function (event) {
    event.preventDefault();
    $form.find(".variations select").val("");
    check();
  });
  setTimeout(check, 100);
});
