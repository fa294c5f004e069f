/* relay notify-me: "email me when it is back in stock" for WooCommerce product pages.
   <script src="https://RELAY/storefront/notify-me.js" defer></script> (see the README).
   No dependencies: it listens to WooCommerce's jQuery events when jQuery is on the page. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || typeof window.fetch !== "function" || !window.JSON) return;

  var TEXT = {
    intro: "Leave your email and we will tell you when it is back in stock.",
    label: "Email address",
    button: "Notify me",
    sending: "Sending\u2026",
    done: "Thank you! We will email you when it is back in stock.",
    email: "Please enter a valid email address, like name@example.com.",
    invalid: "Sorry, this request could not be saved. Please reload the page and try again.",
    wait: "Too many requests. Please wait {minutes} min and try again.",
    later: "Sorry, we could not save your request right now. Please try again later."
  };
  Object.keys(TEXT).forEach(function (key) {  // data-text-done="…" etc. translate it
    var own = script.getAttribute("data-text-" + key);
    if (own) TEXT[key] = own;
  });
  var base = script.getAttribute("data-relay") ||
    script.src.replace(/\/storefront\/notify-me\.js([?#].*)?$/, "");
  var endpoint = base.replace(/\/+$/, "") + "/storefront/back-in-stock";

  function el(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) node.textContent = text;
    return node;
  }

  function trimmed(node) {
    return node ? node.textContent.replace(/\s+/g, " ").trim() : "";
  }

  function productId(container) {
    var found = /(?:^|\s)post-(\d+)(?:\s|$)/.exec((container && container.className) || "") ||
      /^product-(\d+)$/.exec((container && container.id) || "");
    return found ? found[1] : "";
  }

  // Shown inside `place` (the merchant's [data-relay-notify-me] element), else after `anchor`.
  function Widget(product, anchor, place) {
    var id = "relay-notify-me-" + Math.random().toString(36).slice(2, 8);
    var self = this;
    this.product = product;
    this.variant = null;
    this.asked = {};  // what this page already asked for: shown as done again
    this.box = el("div", { "class": "relay-notify-me" });
    this.box.hidden = true;
    this.form = el("form", { "class": "relay-notify-me__form", novalidate: "" });
    this.intro = el("p", { id: id + "-intro", "class": "relay-notify-me__intro" }, TEXT.intro);
    this.input = el("input", {
      id: id + "-email", type: "email", name: "email", autocomplete: "email",
      inputmode: "email", required: "", "aria-describedby": id + "-intro " + id + "-message"
    });
    this.trap = el("input", { type: "text", name: "leave_this_empty", tabindex: "-1",
      autocomplete: "off" });
    var trapBox = el("div", { "aria-hidden": "true" });
    trapBox.style.cssText = "position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden";
    trapBox.appendChild(this.trap);
    this.button = el("button", { type: "submit", "class": "button" }, TEXT.button);
    this.message = el("p", { id: id + "-message", "class": "relay-notify-me__message",
      role: "status", "aria-live": "polite" });
    var row = el("div", { "class": "relay-notify-me__row" });
    row.style.cssText = "display:flex;flex-wrap:wrap;gap:0.5em;align-items:center";
    row.appendChild(this.input);
    row.appendChild(this.button);
    this.fields = el("div");
    [this.intro, el("label", { "for": this.input.id }, TEXT.label), row, trapBox]
      .forEach(function (node) { self.fields.appendChild(node); });
    this.form.appendChild(this.fields);
    this.form.appendChild(this.message);
    this.box.appendChild(this.form);
    this.box.style.margin = "1em 0";
    if (place) place.appendChild(this.box);
    else anchor.parentNode.insertBefore(this.box, anchor.nextSibling);
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.send();
    });
  }

  Widget.prototype.key = function () {
    return this.variant ? this.variant.id : "";
  };

  // Ask for this product (variant: null) or variant ({id, title}); hide with show(false).
  Widget.prototype.show = function (visible, variant) {
    this.variant = variant || null;
    this.box.hidden = !visible;
    var done = this.asked[this.key()];
    this.fields.hidden = !!done;
    this.say(done ? TEXT.done : "", done ? "done" : "");
  };

  // state: "" | "done" | "error" | "email" (an error about the address: the field says so)
  Widget.prototype.say = function (text, state) {
    var error = state === "error" || state === "email";
    this.message.textContent = text;
    this.box.className = "relay-notify-me" + (state ? " relay-notify-me--" + state : "");
    this.message.style.color = error ? "#b3261e" : "";
    if (state === "email") this.input.setAttribute("aria-invalid", "true");
    else this.input.removeAttribute("aria-invalid");
  };

  Widget.prototype.send = function () {
    var self = this;
    var email = this.input.value.trim();
    if (this.busy) return;
    if (email.indexOf("@") < 1) {
      this.say(TEXT.email, "email");
      this.input.focus();
      return;
    }
    var body = { email: email, productId: this.product.id, leave_this_empty: this.trap.value };
    if (this.product.title) body.productTitle = this.product.title;
    if (this.variant) {
      body.variantId = this.variant.id;
      if (this.variant.title) body.variantTitle = this.variant.title;
    }
    var key = this.key();
    var abort = typeof AbortController === "function" ? new AbortController() : null;
    var timer = abort && setTimeout(function () { abort.abort(); }, 15000);
    this.busy = true;
    this.button.disabled = true;
    this.button.textContent = TEXT.sending;
    fetch(endpoint, {
      method: "POST", mode: "cors", credentials: "omit", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      signal: abort ? abort.signal : undefined
    }).then(function (answer) {
      return answer.json().catch(function () { return null; }).then(function (data) {
        self.answered(answer.status, data, answer.headers.get("Retry-After"), key);
      });
    }).catch(function () {
      self.say(TEXT.later, "error");
    }).then(function () {
      clearTimeout(timer);
      self.busy = false;
      self.button.disabled = false;
      self.button.textContent = TEXT.button;
    });
  };

  Widget.prototype.answered = function (status, data, retryAfter, key) {
    var error = (data && data.error) || {};
    if (status === 200 || status === 202) {
      this.asked[key] = true;
      this.fields.hidden = true;
      this.say(TEXT.done, "done");
    } else if (status === 400 && error.details && error.details.email) {
      this.say(TEXT.email, "email");
      this.input.focus();
    } else if (status === 429) {
      var minutes = Math.max(1, Math.ceil((parseInt(retryAfter, 10) || 60) / 60));
      this.say(TEXT.wait.replace("{minutes}", minutes), "error");
    } else {
      this.say(status === 400 ? TEXT.invalid : TEXT.later, "error");
    }
  };

  // --- variable products: follow the chosen variation ----------------------------------

  function chosenTitle(form, variation) {
    var parts = [];
    form.querySelectorAll(".variations select").forEach(function (select) {
      var option = select.options[select.selectedIndex];
      if (select.value && option) parts.push(trimmed(option));
    });
    if (!parts.length && variation.attributes) {
      Object.keys(variation.attributes).forEach(function (name) {
        if (variation.attributes[name]) parts.push(variation.attributes[name]);
      });
    }
    return parts.join(", ");
  }

  function followVariations(form, widget) {
    var variations = [];
    try {
      variations = JSON.parse(form.getAttribute("data-product_variations") || "[]") || [];
    } catch (ignored) { /* WooCommerce loads them later over AJAX */ }

    function found(variation) {
      if (!variation || !variation.variation_id) return widget.show(false);
      var soldOut = variation.is_in_stock === false;
      widget.show(soldOut, { id: String(variation.variation_id),
        title: chosenTitle(form, variation) });
    }

    function byId(id) {
      for (var i = 0; i < variations.length; i++) {
        if (String(variations[i].variation_id) === String(id)) return variations[i];
      }
      return null;
    }

    function matching() {  // without jQuery: WooCommerce's own matching rule, by hand
      var chosen = {}, complete = true;
      form.querySelectorAll(".variations select").forEach(function (select) {
        chosen[select.getAttribute("data-attribute_name") || select.name] = select.value;
        if (!select.value) complete = false;
      });
      if (!complete) return null;
      for (var i = 0; i < variations.length; i++) {
        var wanted = variations[i].attributes || {}, fits = true;
        Object.keys(wanted).forEach(function (name) {
          if (wanted[name] && chosen[name] && wanted[name] !== chosen[name]) fits = false;
        });
        if (fits) return variations[i];
      }
      return null;
    }

    var jq = window.jQuery;
    if (jq && jq.fn && jq.fn.on) {
      // WooCommerce raises these with jQuery's trigger: plain DOM listeners never see them.
      jq(form).on("found_variation", function (event, variation) { found(variation); });
      jq(form).on("reset_data", function () { widget.show(false); });
    } else {
      form.addEventListener("change", function () { found(matching()); });
    }
    var current = form.querySelector("input.variation_id, input[name='variation_id']");
    found(current && current.value && current.value !== "0" ? byId(current.value) : matching());
  }

  // --- start -----------------------------------------------------------------------------

  function start() {
    var place = document.querySelector("[data-relay-notify-me]");
    var form = document.querySelector("form.variations_form[data-product_id]");
    var container = (form && form.closest(".product")) ||
      document.querySelector(".product.type-product, div.product[id^='product-']");
    var id = script.getAttribute("data-product-id") ||
      (form && form.getAttribute("data-product_id")) || productId(container);
    if (!id) return;
    var title = script.getAttribute("data-product-title") ||
      trimmed((container || document).querySelector(".product_title"));
    var product = { id: String(id), title: title };
    if (form) {
      followVariations(form, new Widget(product, form, place));
      return;
    }
    var stock = (container || document).querySelector(
      ".stock.out-of-stock, .wc-block-components-product-stock-indicator--out-of-stock");
    var soldOut = stock || (container && container.classList.contains("outofstock")) ||
      script.hasAttribute("data-out-of-stock");
    if (!soldOut) return;
    var summary = container && container.querySelector(".summary, .entry-summary");
    new Widget(product, stock || script, place || (!stock && summary) || null).show(true);
  }

  var started = false;
  function safely() {
    if (started) return;
    started = true;
    try {
      start();
    } catch (error) {  // never break the shop's page
      if (window.console) window.console.warn("relay notify-me:", error);
    }
  }

  // After every deferred script (jQuery may be one), or at load when added later than that.
  if (document.readyState === "complete") safely();
  else {
    document.addEventListener("DOMContentLoaded", safely);
    window.addEventListener("load", safely);
  }
})();
