{
  "patcher": {
    "fileversion": 1,
    "appversion": {
      "major": 8,
      "minor": 6,
      "revision": 0,
      "architecture": "x64",
      "modernui": 1
    },
    "classnamespace": "box",
    "rect": [
      100.0,
      100.0,
      1100.0,
      500.0
    ],
    "openinpresentation": 1,
    "devicewidth": 450.0,
    "default_fontsize": 10.0,
    "default_fontname": "Arial",
    "boxes": [
      {
        "box": {
          "id": "obj-1",
          "maxclass": "comment",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            10,
            200,
            18
          ],
          "text": "livevace → udp 9000",
          "fontface": 1,
          "presentation": 1,
          "presentation_rect": [
            6.0,
            2.0,
            200.0,
            18.0
          ]
        }
      },
      {
        "box": {
          "id": "obj-2",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            420,
            160,
            22.0
          ],
          "text": "udpsend 127.0.0.1 9000"
        }
      },
      {
        "box": {
          "id": "obj-3",
          "maxclass": "live.dial",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            20,
            40,
            44,
            48
          ],
          "parameter_enable": 1,
          "varname": "vace_context_scale",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "vace_context_scale",
              "parameter_shortname": "Context",
              "parameter_type": 0,
              "parameter_mmin": 0.0,
              "parameter_mmax": 2.0,
              "parameter_initial": [
                1.0
              ],
              "parameter_initial_enable": 1,
              "parameter_unitstyle": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            6.0,
            24.0,
            44.0,
            48.0
          ],
          "outlettype": [
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-4",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            110,
            125,
            22.0
          ],
          "text": "prepend /livevace/vace_context_scale",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-5",
          "maxclass": "live.dial",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            150,
            40,
            44,
            48
          ],
          "parameter_enable": 1,
          "varname": "vace_refinement_scale",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "vace_refinement_scale",
              "parameter_shortname": "Refinement",
              "parameter_type": 0,
              "parameter_mmin": 0.0,
              "parameter_mmax": 2.0,
              "parameter_initial": [
                1.0
              ],
              "parameter_initial_enable": 1,
              "parameter_unitstyle": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            64.0,
            24.0,
            44.0,
            48.0
          ],
          "outlettype": [
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-6",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            150,
            110,
            125,
            22.0
          ],
          "text": "prepend /livevace/vace_refinement_scale",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-7",
          "maxclass": "live.dial",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            280,
            40,
            44,
            48
          ],
          "parameter_enable": 1,
          "varname": "vace_generation_scale",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "vace_generation_scale",
              "parameter_shortname": "Generation",
              "parameter_type": 0,
              "parameter_mmin": 0.0,
              "parameter_mmax": 2.0,
              "parameter_initial": [
                1.0
              ],
              "parameter_initial_enable": 1,
              "parameter_unitstyle": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            122.0,
            24.0,
            44.0,
            48.0
          ],
          "outlettype": [
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-8",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            280,
            110,
            125,
            22.0
          ],
          "text": "prepend /livevace/vace_generation_scale",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-9",
          "maxclass": "live.dial",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            410,
            40,
            44,
            48
          ],
          "parameter_enable": 1,
          "varname": "noise_scale",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "noise_scale",
              "parameter_shortname": "Noise",
              "parameter_type": 0,
              "parameter_mmin": 0.0,
              "parameter_mmax": 1.0,
              "parameter_initial": [
                0.7
              ],
              "parameter_initial_enable": 1,
              "parameter_unitstyle": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            180.0,
            24.0,
            44.0,
            48.0
          ],
          "outlettype": [
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-10",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            410,
            110,
            125,
            22.0
          ],
          "text": "prepend /livevace/noise_scale",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-11",
          "maxclass": "live.menu",
          "numinlets": 1,
          "numoutlets": 3,
          "patching_rect": [
            560,
            40,
            150,
            18
          ],
          "parameter_enable": 1,
          "varname": "scene",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "scene",
              "parameter_shortname": "Scene",
              "parameter_type": 2,
              "parameter_enum": [
                "forest_spirit",
                "ink_wash",
                "liquid_chrome",
                "neon_dancer",
                "stratification/baseline",
                "stratification/inverse",
                "stratification/moderate",
                "stratification/strong"
              ],
              "parameter_mmax": 7
            }
          },
          "presentation": 1,
          "presentation_rect": [
            240.0,
            24.0,
            150.0,
            18.0
          ],
          "outlettype": [
            "",
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-12",
          "maxclass": "live.menu",
          "numinlets": 1,
          "numoutlets": 3,
          "patching_rect": [
            720,
            40,
            60,
            18
          ],
          "parameter_enable": 1,
          "varname": "launch",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "launch",
              "parameter_shortname": "Launch",
              "parameter_type": 2,
              "parameter_enum": [
                "bar",
                "beat",
                "now"
              ],
              "parameter_mmax": 2,
              "parameter_initial": [
                0
              ],
              "parameter_initial_enable": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            240.0,
            52.0,
            60.0,
            18.0
          ],
          "outlettype": [
            "",
            "",
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "obj-13",
          "maxclass": "comment",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            790,
            40,
            120,
            18
          ],
          "text": "scene lands on",
          "presentation": 1,
          "presentation_rect": [
            304.0,
            52.0,
            90.0,
            18.0
          ]
        }
      },
      {
        "box": {
          "id": "obj-14",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 3,
          "patching_rect": [
            720,
            10,
            90,
            22.0
          ],
          "text": "live.thisdevice",
          "outlettype": [
            "bang",
            "int",
            "int"
          ]
        }
      },
      {
        "box": {
          "id": "obj-15",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 3,
          "patching_rect": [
            560,
            80,
            80,
            22.0
          ],
          "text": "t b b s",
          "outlettype": [
            "bang",
            "bang",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-16",
          "maxclass": "newobj",
          "numinlets": 2,
          "numoutlets": 2,
          "patching_rect": [
            600,
            300,
            60,
            22.0
          ],
          "text": "zl reg",
          "outlettype": [
            "",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-17",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            600,
            160,
            30,
            22
          ],
          "text": "1",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-18",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            660,
            160,
            30,
            22
          ],
          "text": "0",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-19",
          "maxclass": "newobj",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            560,
            230,
            50,
            22.0
          ],
          "text": "gate",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-20",
          "maxclass": "newobj",
          "numinlets": 4,
          "numoutlets": 1,
          "patching_rect": [
            560,
            190,
            120,
            22.0
          ],
          "text": "switch 3",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-21",
          "maxclass": "newobj",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            720,
            80,
            40,
            22.0
          ],
          "text": "+ 1",
          "outlettype": [
            "int"
          ]
        }
      },
      {
        "box": {
          "id": "obj-22",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 2,
          "patching_rect": [
            560,
            270,
            50,
            22.0
          ],
          "text": "t b b",
          "outlettype": [
            "bang",
            "bang"
          ]
        }
      },
      {
        "box": {
          "id": "obj-23",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            600,
            340,
            140,
            22.0
          ],
          "text": "prepend /livevace/scene",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-24",
          "maxclass": "newobj",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            820,
            120,
            140,
            22.0
          ],
          "text": "metro 1n @quantize 1n @active 1",
          "outlettype": [
            "bang"
          ]
        }
      },
      {
        "box": {
          "id": "obj-25",
          "maxclass": "newobj",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            970,
            120,
            140,
            22.0
          ],
          "text": "metro 4n @quantize 4n @active 1",
          "outlettype": [
            "bang"
          ]
        }
      },
      {
        "box": {
          "id": "obj-26",
          "maxclass": "live.button",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            20,
            200,
            24,
            24
          ],
          "parameter_enable": 1,
          "varname": "reset_cache",
          "saved_attribute_attributes": {
            "valueof": {
              "parameter_longname": "reset_cache",
              "parameter_shortname": "Reset",
              "parameter_type": 2,
              "parameter_enum": [
                "off",
                "on"
              ],
              "parameter_mmax": 1
            }
          },
          "presentation": 1,
          "presentation_rect": [
            400.0,
            24.0,
            24.0,
            24.0
          ],
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-27",
          "maxclass": "comment",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            50,
            200,
            60,
            18
          ],
          "text": "reset",
          "presentation": 1,
          "presentation_rect": [
            400.0,
            50.0,
            40.0,
            18.0
          ]
        }
      },
      {
        "box": {
          "id": "obj-28",
          "maxclass": "message",
          "numinlets": 2,
          "numoutlets": 1,
          "patching_rect": [
            20,
            250,
            150,
            22
          ],
          "text": "/livevace/reset_cache",
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "obj-29",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 1,
          "patching_rect": [
            300,
            420,
            50,
            22.0
          ],
          "text": "midiin",
          "outlettype": [
            "int"
          ]
        }
      },
      {
        "box": {
          "id": "obj-30",
          "maxclass": "newobj",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            360,
            420,
            60,
            22.0
          ],
          "text": "midiout"
        }
      }
    ],
    "lines": [
      {
        "patchline": {
          "source": [
            "obj-3",
            0
          ],
          "destination": [
            "obj-4",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-4",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-5",
            0
          ],
          "destination": [
            "obj-6",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-6",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-7",
            0
          ],
          "destination": [
            "obj-8",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-8",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-9",
            0
          ],
          "destination": [
            "obj-10",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-10",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-14",
            0
          ],
          "destination": [
            "obj-12",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-11",
            1
          ],
          "destination": [
            "obj-15",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            2
          ],
          "destination": [
            "obj-16",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            1
          ],
          "destination": [
            "obj-17",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-17",
            0
          ],
          "destination": [
            "obj-19",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            0
          ],
          "destination": [
            "obj-20",
            3
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-24",
            0
          ],
          "destination": [
            "obj-20",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-25",
            0
          ],
          "destination": [
            "obj-20",
            2
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-12",
            0
          ],
          "destination": [
            "obj-21",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-21",
            0
          ],
          "destination": [
            "obj-20",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-20",
            0
          ],
          "destination": [
            "obj-19",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-19",
            0
          ],
          "destination": [
            "obj-22",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-22",
            1
          ],
          "destination": [
            "obj-18",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-18",
            0
          ],
          "destination": [
            "obj-19",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-22",
            0
          ],
          "destination": [
            "obj-16",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-16",
            0
          ],
          "destination": [
            "obj-23",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-23",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-26",
            0
          ],
          "destination": [
            "obj-28",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-28",
            0
          ],
          "destination": [
            "obj-2",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-29",
            0
          ],
          "destination": [
            "obj-30",
            0
          ]
        }
      }
    ],
    "parameters": {
      "obj-3": [
        "vace_context_scale",
        "Context",
        0
      ],
      "obj-5": [
        "vace_refinement_scale",
        "Refinement",
        0
      ],
      "obj-7": [
        "vace_generation_scale",
        "Generation",
        0
      ],
      "obj-9": [
        "noise_scale",
        "Noise",
        0
      ],
      "obj-11": [
        "scene",
        "Scene",
        0
      ],
      "obj-12": [
        "launch",
        "Launch",
        0
      ],
      "obj-26": [
        "reset_cache",
        "Reset",
        0
      ]
    },
    "dependency_cache": [],
    "autosave": 0
  }
}
